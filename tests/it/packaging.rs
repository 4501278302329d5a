//! Packaging (SPEC §9): the Dockerfile and the systemd unit say what the
//! operations contract needs. There is no Docker engine or systemd here, so
//! the files are checked as text; `systemd-analyze verify` runs when present.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Dockerfile instructions (continuation lines joined, comments dropped), as
/// (INSTRUCTION, arguments), grouped by build stage.
fn docker_stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in logical {
        let (instruction, args) = line.split_once(' ').unwrap_or((&line, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        let stage = stages
            .last_mut()
            .unwrap_or_else(|| panic!("{instruction} before the first FROM"));
        stage.push((instruction, args.trim().to_string()));
    }
    stages
}

fn args_of<'a>(stage: &'a [(String, String)], instruction: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|(i, _)| i == instruction)
        .map(|(_, a)| a.as_str())
        .collect()
}

#[test]
fn dockerfile_is_multi_stage_slim_non_root_with_a_health_check() {
    let stages = docker_stages(&read("Dockerfile"));
    assert!(stages.len() >= 2, "not a multi-stage build");

    // A named build stage compiles the release binary
    let build = &stages[0];
    let from = args_of(build, "FROM")[0];
    assert!(
        from.to_lowercase().contains(" as "),
        "unnamed stage: {from}"
    );
    let build_name = from.rsplit(' ').next().unwrap();
    assert!(
        args_of(build, "RUN")
            .iter()
            .any(|r| r.contains("cargo build") && r.contains("--release")),
        "the build stage does not run cargo build --release"
    );

    // The runtime stage is small and copies only the binary from it
    let runtime = stages.last().unwrap();
    let base = args_of(runtime, "FROM")[0];
    assert!(
        base.contains("slim") || base.contains("distroless"),
        "runtime base is not slim: {base}"
    );
    let copies = args_of(runtime, "COPY");
    assert!(
        copies
            .iter()
            .any(|c| c.contains(&format!("--from={build_name}")) && c.contains("free-llm-proxy")),
        "the runtime stage does not copy the binary from '{build_name}': {copies:?}"
    );
    assert!(
        !args_of(runtime, "RUN").iter().any(|r| r.contains("cargo")),
        "the runtime stage builds"
    );

    // Runs as a non-root user
    let users = args_of(runtime, "USER");
    let user = users.last().expect("no USER in the runtime stage");
    let name = user.split(':').next().unwrap();
    assert!(!["root", "0", ""].contains(&name), "USER {user}");

    // Health check on /health (no auth there), config and state where documented
    let health = args_of(runtime, "HEALTHCHECK");
    assert_eq!(health.len(), 1, "{health:?}");
    assert!(health[0].contains("CMD") && health[0].contains("/health"));
    assert!(health[0].contains("--interval="), "{}", health[0]);
    let entry = args_of(runtime, "ENTRYPOINT").join(" ") + &args_of(runtime, "CMD").join(" ");
    assert!(
        entry.contains("/etc/free-llm-proxy/"),
        "the config is not read from /etc/free-llm-proxy: {entry}"
    );
    assert!(
        args_of(runtime, "VOLUME")
            .iter()
            .any(|v| v.contains("/var/lib/free-llm-proxy")),
        "no state volume"
    );
    assert!(args_of(runtime, "EXPOSE").join(" ").contains("8080"));
    assert!(
        args_of(runtime, "STOPSIGNAL")
            .iter()
            .all(|s| s.contains("SIGTERM")),
        "stop signal must be SIGTERM (graceful shutdown)"
    );
}

#[test]
fn dockerignore_keeps_the_build_context_small() {
    let ignore = read(".dockerignore");
    for entry in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim().trim_matches('/') == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

/// `[Section]` → key → every value given (repeated keys accumulate; an empty
/// assignment is kept as "").
fn unit_sections(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key=value line: {line}"));
        sections
            .entry(section.clone())
            .or_default()
            .entry(key.trim().to_string())
            .or_default()
            .push(value.trim().to_string());
    }
    sections
}

#[test]
fn systemd_unit_is_hardened_and_reloads_without_downtime() {
    let unit = unit_sections(&read("systemd/free-llm-proxy.service"));
    let service = &unit["Service"];
    let one = |key: &str| -> &str {
        match service.get(key).map(Vec::as_slice) {
            Some([value]) => value,
            other => panic!("[Service] {key}: expected one value, got {other:?}"),
        }
    };

    // Identity, places, secrets
    assert!(
        one("DynamicUser") == "yes" || service.contains_key("User"),
        "runs as root"
    );
    assert_eq!(one("StateDirectory"), "free-llm-proxy");
    assert_eq!(one("ConfigurationDirectory"), "free-llm-proxy");
    assert_eq!(one("RuntimeDirectory"), "free-llm-proxy");
    assert_eq!(one("EnvironmentFile"), "-/etc/free-llm-proxy/env");

    // Hardening
    for (key, want) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(one(key), want, "[Service] {key}");
    }

    // Daemon mode with a PID file, so that a reload can hand the main PID over
    assert_eq!(one("Type"), "forking");
    let pid_file = one("PIDFile");
    assert!(pid_file.starts_with("/run/free-llm-proxy/"), "{pid_file}");
    let start = one("ExecStart");
    assert!(start.contains(" -d ") && start.contains("--config /etc/free-llm-proxy/"));

    // Reload = check the config, SIGQUIT the old process, start the new one with -u
    let reload = &service["ExecReload"];
    let position = |needle: &str| {
        reload
            .iter()
            .position(|cmd| cmd.contains(needle))
            .unwrap_or_else(|| panic!("no ExecReload step with {needle}: {reload:?}"))
    };
    let check = position("--check");
    let quit = position("-QUIT $MAINPID");
    let upgrade = position(" -u");
    assert!(check < quit && quit < upgrade, "{reload:?}");
    assert!(reload[upgrade].contains(" -d"), "{}", reload[upgrade]);

    // Graceful stop: SIGTERM, with time for the grace period of the shipped config
    assert_eq!(one("KillSignal"), "SIGTERM");
    let conf: serde_yaml::Value =
        serde_yaml::from_str(&read("conf/free-llm-proxy.yaml")).expect("shipped config is YAML");
    let secs = |key: &str| conf["server"][key].as_u64().unwrap_or(0);
    let needed = secs("grace_period_seconds") + secs("graceful_shutdown_timeout_seconds");
    let stop_timeout: u64 = one("TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop_timeout > needed,
        "TimeoutStopSec {stop_timeout} <= {needed}"
    );

    // The shipped config puts the pid file and upgrade socket in RuntimeDirectory
    let runtime = |key: &str| {
        conf["server"][key]
            .as_str()
            .unwrap_or_default()
            .replace("${RUNTIME_DIRECTORY:-/tmp}", "/run/free-llm-proxy")
    };
    assert_eq!(runtime("pid_file"), pid_file);
    assert!(runtime("upgrade_sock").starts_with("/run/free-llm-proxy/"));

    assert_eq!(unit["Install"]["WantedBy"], ["multi-user.target"]);
}

#[test]
fn systemd_analyze_verify_is_clean() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed (Debian package systemd)");
        return;
    };
    assert!(probe.status.success());
    // The unit names the installed binary; point it at the one cargo built.
    let unit = read("systemd/free-llm-proxy.service").replace(
        "/usr/local/bin/free-llm-proxy",
        env!("CARGO_BIN_EXE_free-llm-proxy"),
    );
    let dir = std::env::temp_dir().join(format!("free-llm-proxy-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let path = dir.join("free-llm-proxy.service");
    std::fs::write(&path, unit).expect("write the unit copy");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze verify");
    let _ = std::fs::remove_dir_all(&dir);
    let said = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    // Only lines about this unit count (a container's own units may be odd).
    let about_us: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("free-llm-proxy"))
        .collect();
    assert!(
        output.status.success() && about_us.is_empty(),
        "systemd-analyze verify: {:?}\n{said}",
        output.status
    );
}
