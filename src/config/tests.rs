//! Config tests: loading, every section, interpolation, URLs.

use super::interpolate::*;
use super::reader::*;
use super::*;

/// An environment holding exactly `vars`.
fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    }
}

fn parse(yaml: &str, vars: &[(&str, &str)]) -> Result<Config> {
    Config::from_yaml_str(yaml, &env(vars))
}

fn parse_ok(yaml: &str, vars: &[(&str, &str)]) -> Config {
    parse(yaml, vars).unwrap_or_else(|e| panic!("should load:\n{yaml}\nerror: {e}"))
}

fn parse_err(yaml: &str, vars: &[(&str, &str)]) -> String {
    match parse(yaml, vars) {
        Ok(config) => panic!("should be rejected:\n{yaml}\ngot: {config:#?}"),
        Err(e) => e.to_string(),
    }
}

const SPEC_EXAMPLE: &str = r#"
listen: "127.0.0.1:8080"            # gateway listener (host:port)
metrics_listen: "127.0.0.1:9091"    # Prometheus listener, GET /metrics
state_dir: "/var/lib/free-llm-proxy" # optional
server:
  threads: 2
  grace_period_seconds: 30
upstream:
  base_url: "https://openrouter.ai/api/v1"
  api_keys: ["${OPENROUTER_API_KEY}"] # one or more; empty entries ignored
  api_keys_file: ""                 # optional: one key per line, # comments
  api_keys_url: ""                  # optional: CSV export, first column = key
  connect_timeout_secs: 5
  timeout_secs: 30                  # per attempt, until response headers
  idle_timeout_secs: 60             # max silence inside a streamed body
models:
  source_url: "https://shir-man.com/api/free-llm/top-models"
  refresh_secs: 3600
routing:
  max_attempts: 5
  request_deadline_secs: 120
  rate_limit_cooldown_secs: 300
  error_cooldown_secs: 60
  use_list_fallback: true
auth:
  client_keys:                      # empty => no auth, loopback listen only
    - { name: "alice", key: "${ALICE_KEY}", rpm: 60 }   # rpm optional
  admin_keys: ["${ADMIN_KEY}"]      # for /admin/*; empty => admin disabled
limits:
  max_body_bytes: 8388608
"#;

const SPEC_ENV: &[(&str, &str)] = &[
    ("OPENROUTER_API_KEY", "sk-or-v1-first,sk-or-v1-second"),
    ("ALICE_KEY", "alice-secret-key"),
    ("ADMIN_KEY", "admin-secret-key"),
];

#[test]
fn empty_files_give_the_built_in_defaults() {
    for text in [
        "",
        "\n",
        "# only a comment\n",
        "---\n",
        "server:\nrouting: ~\n",
    ] {
        assert_eq!(parse_ok(text, &[]), Config::default(), "for {text:?}");
    }
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::default();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
    assert_eq!(c.state_dir, None);
    assert_eq!(c.server.threads, 2);
    assert_eq!(c.server.pid_file, "/tmp/free-llm-proxy.pid");
    assert_eq!(c.server.upgrade_sock, "/tmp/free-llm-proxy-upgrade.sock");
    assert_eq!((c.server.daemon, c.server.work_stealing), (false, true));
    assert_eq!(c.server.grace_period_seconds, 30);
    assert_eq!(c.server.graceful_shutdown_timeout_seconds, 10);
    assert_eq!(c.server.upstream_keepalive_pool_size, 128);
    assert_eq!(
        c.upstream.base_url.to_string(),
        "https://openrouter.ai/api/v1"
    );
    assert!(c.upstream.api_keys.is_empty());
    assert_eq!(c.upstream.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.upstream.timeout, Duration::from_secs(30));
    assert_eq!(c.upstream.idle_timeout, Duration::from_secs(60));
    assert_eq!(
        c.models.source_url.to_string(),
        "https://shir-man.com/api/free-llm/top-models"
    );
    assert_eq!(c.models.refresh, Duration::from_secs(3600));
    assert_eq!(
        c.routing,
        RoutingSettings {
            max_attempts: 5,
            request_deadline: Duration::from_secs(120),
            rate_limit_cooldown: Duration::from_secs(300),
            error_cooldown: Duration::from_secs(60),
            use_list_fallback: true,
            ..RoutingSettings::default()
        }
    );
    assert!(c.auth.client_keys.is_empty() && c.auth.admin_keys.is_empty());
    assert_eq!(c.limits.max_body_bytes, 8_388_608);
    // The default URLs are built by hand; they must be what parsing gives.
    for url in [&c.upstream.base_url, &c.models.source_url] {
        assert_eq!(HttpUrl::parse(&url.to_string()).as_ref(), Ok(url));
    }
}

#[test]
fn load_without_a_file_gives_defaults() {
    // Only the env shortcuts can differ, and they cannot make it fail on
    // the loopback default listener.
    let config = Config::load(None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen, Config::default().listen);
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir =
        std::env::temp_dir().join(format!("free-llm-proxy-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    std::fs::write(&good, "listen: \"127.0.0.1:18080\"\n").unwrap();
    std::fs::write(&bad, "routing:\n  max_attempts: 0\n").unwrap();

    let config = Config::load(Some(&good)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.listen.port(), 18080);

    let e = Config::load(Some(&bad)).unwrap_err();
    assert_eq!(e.file(), Some(bad.as_path()));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: routing.max_attempts: expected an integer >= 1, got 0",
            bad.display()
        )
    );

    let missing = dir.join("missing.yaml");
    let e = Config::load(Some(&missing)).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot read config file:", missing.display())),
        "{e}"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spec_example_loads() {
    let c = parse_ok(SPEC_EXAMPLE, SPEC_ENV);
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
    assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/free-llm-proxy")));
    assert_eq!(c.server, ServerSettings::default());
    assert_eq!(c.upstream.api_keys, ["sk-or-v1-first", "sk-or-v1-second"]);
    assert_eq!(
        (c.upstream.api_keys_file, c.upstream.api_keys_url),
        (None, None)
    );
    assert_eq!(c.models, ModelsSettings::default());
    assert_eq!(c.routing, RoutingSettings::default());
    assert_eq!(
        c.auth.client_keys,
        [ClientKey {
            name: "alice".to_owned(),
            key: "alice-secret-key".to_owned(),
            rpm: Some(60),
        }]
    );
    assert_eq!(c.auth.admin_keys, ["admin-secret-key"]);
    assert_eq!(c.limits, LimitsSettings::default());
}

#[test]
fn every_key_can_be_set() {
    let c = parse_ok(
        r#"
listen: "0.0.0.0:80"
metrics_listen: "[::1]:9100"
server:
  threads: 8
  pid_file: /run/p.pid
  upgrade_sock: /run/u.sock
  error_log: /var/log/e.log
  user: proxy
  group: proxy
  daemon: true
  grace_period_seconds: 0
  graceful_shutdown_timeout_seconds: 5
  upstream_keepalive_pool_size: 0
  work_stealing: false
upstream:
  base_url: "http://10.0.0.2:8000/v1/"
  api_keys_file: /etc/keys.txt
  api_keys_url: "https://docs.example.com/export?format=csv"
  connect_timeout_secs: 1
  timeout_secs: 2
  idle_timeout_secs: 3
models:
  source_url: "http://127.0.0.1:9000/models.json"
  refresh_secs: 60
routing:
  max_attempts: 1
  request_deadline_secs: 10
  rate_limit_cooldown_secs: 11
  error_cooldown_secs: 12
  use_list_fallback: false
auth:
  client_keys: [{ name: bob, key: bob-key }]
limits:
  max_body_bytes: 1024
"#,
        &[],
    );
    assert_eq!(c.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.metrics_listen.to_string(), "[::1]:9100");
    assert_eq!(
        c.server,
        ServerSettings {
            threads: 8,
            pid_file: "/run/p.pid".to_owned(),
            upgrade_sock: "/run/u.sock".to_owned(),
            error_log: Some("/var/log/e.log".to_owned()),
            user: Some("proxy".to_owned()),
            group: Some("proxy".to_owned()),
            daemon: true,
            grace_period_seconds: 0,
            graceful_shutdown_timeout_seconds: 5,
            upstream_keepalive_pool_size: 0,
            work_stealing: false,
        }
    );
    assert_eq!(c.upstream.base_url.to_string(), "http://10.0.0.2:8000/v1");
    assert_eq!(
        c.upstream.api_keys_file,
        Some(PathBuf::from("/etc/keys.txt"))
    );
    assert_eq!(
        c.upstream.api_keys_url.map(|u| u.to_string()).as_deref(),
        Some("https://docs.example.com/export?format=csv")
    );
    assert_eq!(
        [
            c.upstream.connect_timeout,
            c.upstream.timeout,
            c.upstream.idle_timeout
        ],
        [1, 2, 3].map(Duration::from_secs)
    );
    assert_eq!(c.models.source_url.authority(), "127.0.0.1:9000");
    assert_eq!(c.models.refresh, Duration::from_secs(60));
    assert_eq!(
        c.routing,
        RoutingSettings {
            max_attempts: 1,
            request_deadline: Duration::from_secs(10),
            rate_limit_cooldown: Duration::from_secs(11),
            error_cooldown: Duration::from_secs(12),
            use_list_fallback: false,
            ..RoutingSettings::default()
        }
    );
    assert_eq!(c.auth.client_keys[0].rpm, None);
    assert_eq!(c.limits.max_body_bytes, 1024);
}

#[test]
fn interpolation_forms() {
    let vars = &[
        ("A", "x"),
        ("EMPTY", ""),
        ("NESTED", "${A}"),
        ("PRICE", "$5"),
    ];
    let cases = [
        ("no reference", "no reference"),
        ("${A}", "x"),
        ("pre-${A}-post", "pre-x-post"),
        ("${A}${A}", "xx"),
        ("${EMPTY}", ""),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${A:-fallback}", "x"),
        ("${UNSET:-}", ""),
        ("${UNSET:-a:-b}", "a:-b"),
        ("${NESTED}", "${A}"), // substituted text is not expanded again
        ("${PRICE}", "$5"),
        ("$$", "$$"),
        ("$${A}", "$${A}"),
        ("a$b", "a$b"),
        ("cost: $", "cost: $"),
        ("{A}", "{A}"),
    ];
    for (template, expected) in cases {
        assert_eq!(
            interpolate(template, &env(vars)).as_deref(),
            Ok(expected),
            "for {template:?}"
        );
    }
}

#[test]
fn interpolation_errors_name_the_variable_and_the_key() {
    let cases: &[(&str, &[&str])] = &[
        (
            "server: {pid_file: \"${NOPE}\"}",
            &["server.pid_file: environment variable NOPE is not set"],
        ),
        (
            "upstream: {api_keys: [\"${OPENROUTER_API_KEY}\"]}",
            &["upstream.api_keys[0]: environment variable OPENROUTER_API_KEY is not set"],
        ),
        (
            "auth: {client_keys: [{name: a, key: \"${ALICE_KEY}\"}]}",
            &["auth.client_keys[0].key: environment variable ALICE_KEY is not set"],
        ),
        (
            "server: {pid_file: \"/run/${RUN\"}",
            &["server.pid_file: unterminated \"${\""],
        ),
        (
            "server: {pid_file: \"${}\"}",
            &["server.pid_file: invalid variable name \"\""],
        ),
        (
            "server: {pid_file: \"${A B}\"}",
            &["server.pid_file: invalid variable name \"A B\""],
        ),
        (
            "server: {pid_file: \"${A-b}\"}",
            &["invalid variable name \"A-b\""],
        ),
        // Unknown sections are interpolated too, before the key check.
        (
            "extra: {deep: [\"${GONE}\"]}",
            &["extra.deep[0]: environment variable GONE is not set"],
        ),
    ];
    for (yaml, expected) in cases {
        let e = parse_err(yaml, &[]);
        for part in *expected {
            assert!(e.contains(part), "{e:?} should contain {part:?}");
        }
    }
    // A malformed reference must not echo the secret around it.
    let e = parse_err("auth: {admin_keys: [\"sk-very-secret-${OOPS\"]}", &[]);
    assert!(!e.contains("sk-very-secret"), "{e}");
}

#[test]
fn interpolation_reaches_nested_values_and_feeds_typed_keys() {
    let vars = &[
        ("KEY", "k-from-env"),
        ("RPM", "30"),
        ("PORT", "9000"),
        ("FALLBACK", "false"),
    ];
    let c = parse_ok(
        r#"
listen: "127.0.0.1:${PORT}"
routing:
  max_attempts: "${ATTEMPTS:-3}"
  use_list_fallback: "${FALLBACK}"
auth:
  client_keys:
    - { name: "${NAME:-carol}", key: "${KEY}", rpm: "${RPM}" }
"#,
        vars,
    );
    assert_eq!(c.listen.port(), 9000);
    assert_eq!(c.routing.max_attempts, 3);
    assert!(!c.routing.use_list_fallback);
    assert_eq!(
        c.auth.client_keys,
        [ClientKey {
            name: "carol".to_owned(),
            key: "k-from-env".to_owned(),
            rpm: Some(30),
        }]
    );
    // Keys are not interpolated: a reference there is just an odd key.
    assert_eq!(parse_err("\"${X}\": 1", &[]), "unknown config key '${X}'");
}

#[test]
fn unknown_keys_are_named_by_their_full_path() {
    let cases = [
        (
            "listn: \"127.0.0.1:1\"",
            "unknown config key 'listn' (did you mean 'listen'?)",
        ),
        ("frobnicate: 1", "unknown config key 'frobnicate'"),
        ("5: x", "unknown config key '5'"),
        (
            "routing:\n  max_atempts: 3",
            "unknown config key 'routing.max_atempts' (did you mean 'routing.max_attempts'?)",
        ),
        (
            "upstream:\n  timeout: 30",
            "unknown config key 'upstream.timeout' (did you mean 'upstream.timeout_secs'?)",
        ),
        (
            "auth:\n  client_keys:\n    - {name: a, key: k1}\n    - {name: b, key: k, rpmm: 5}",
            "unknown config key 'auth.client_keys[1].rpmm' \
                 (did you mean 'auth.client_keys[1].rpm'?)",
        ),
        (
            "server:\n  colour: blue\n  threads: 2\n  flavour: x",
            "unknown config keys 'server.colour', 'server.flavour'",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
    }
}

#[test]
fn bad_values_name_the_key_and_the_value() {
    let cases = [
        (
            "routing: {max_attempts: abc}",
            "routing.max_attempts: expected an integer >= 1, got \"abc\"",
        ),
        (
            "routing: {max_attempts: 0}",
            "routing.max_attempts: expected an integer >= 1, got 0",
        ),
        (
            "routing: {max_attempts: 1.5}",
            "routing.max_attempts: expected an integer >= 1, got 1.5",
        ),
        (
            "routing: {max_attempts: 99999999999}",
            "routing.max_attempts: 99999999999 is too large",
        ),
        (
            "routing: {max_attempts: [1]}",
            "routing.max_attempts: expected an integer >= 1, got a list",
        ),
        (
            "server: {threads: -1}",
            "server.threads: expected an integer >= 1, got -1",
        ),
        (
            "server: {pid_file: \"\"}",
            "server.pid_file: must not be empty",
        ),
        (
            "server: {daemon: yes}",
            "server.daemon: expected true or false, got \"yes\"",
        ),
        (
            "limits: {max_body_bytes: 100}",
            "limits.max_body_bytes: expected an integer >= 1024, got 100",
        ),
        (
            "upstream: {timeout_secs: 0}",
            "upstream.timeout_secs: \
                 expected a whole number of seconds from 1 to 31536000, got 0",
        ),
        (
            "models: {refresh_secs: 1h}",
            "models.refresh_secs: \
                 expected a whole number of seconds from 1 to 31536000, got \"1h\"",
        ),
        (
            "routing: {error_cooldown_secs: 31536001}",
            "routing.error_cooldown_secs: \
                 expected a whole number of seconds from 1 to 31536000, got 31536001",
        ),
        (
            "metrics_listen: \"0.0.0.0:8080\"",
            "metrics_listen: 0.0.0.0:8080 clashes with listen (127.0.0.1:8080)",
        ),
        (
            "upstream: {base_url: \"ftp://example.com\"}",
            "upstream.base_url: \"ftp://example.com\" is not an http(s) URL: \
                 unsupported scheme \"ftp\"",
        ),
        (
            "upstream: {base_url: \"https://example.com/v1?x=1\"}",
            "upstream.base_url: https://example.com/v1?x=1 must not have a ?query",
        ),
        (
            "models: {source_url: \"https:///top\"}",
            "models.source_url: \"https:///top\" is not an http(s) URL: it has no host",
        ),
        (
            "upstream: {api_keys_url: keys.csv}",
            "upstream.api_keys_url: \"keys.csv\" is not an http(s) URL: \
                 it does not start with http:// or https://",
        ),
        (
            "listen: 8080",
            "listen: expected a string (quote the value), got 8080",
        ),
        (
            "listen: \"127.0.0.1:0\"",
            "listen: \"127.0.0.1:0\" has port 0; a fixed port is required",
        ),
        (
            "metrics_listen: \"127.0.0.1:8080\"",
            "metrics_listen: 127.0.0.1:8080 clashes with listen (127.0.0.1:8080)",
        ),
        (
            "routing: 5",
            "routing: expected a mapping of keys, got a number",
        ),
        ("- a\n- b", "expected a mapping of keys, got a list"),
        (
            "auth: {client_keys: {name: a}}",
            "auth.client_keys: expected a list, got a mapping",
        ),
        (
            "auth: {client_keys: [{key: k}]}",
            "auth.client_keys[0].name: is required",
        ),
        (
            "auth: {client_keys: [{name: \" \", key: k}]}",
            "auth.client_keys[0].name: must not be empty",
        ),
        (
            "auth: {client_keys: [{name: a}]}",
            "auth.client_keys[0].key: is required",
        ),
        (
            "auth: {client_keys: [{name: a, key: \"\"}]}",
            "auth.client_keys[0].key: must not be empty",
        ),
        (
            "auth: {client_keys: [{name: a, key: k, rpm: 0}]}",
            "auth.client_keys[0].rpm: expected an integer >= 1, got 0",
        ),
        (
            "auth: {client_keys: [{name: a, key: k1}, {name: a, key: k2}]}",
            "auth.client_keys[1]: client key name \"a\" is already used by auth.client_keys[0]",
        ),
        (
            "auth: {client_keys: [{name: a, key: k1}, {name: b, key: k1}]}",
            "auth.client_keys[1]: the key is the same as auth.client_keys[0]'s; \
                 client keys must be unique",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
    }

    let e = parse_err("listen: nonsense", &[]);
    assert!(
        e.starts_with("listen: \"nonsense\" is not a host:port address"),
        "{e}"
    );
    for yaml in ["listen: [", "listen: a\nlisten: b"] {
        let e = parse_err(yaml, &[]);
        assert!(e.starts_with("invalid YAML: "), "{e}");
    }
}

#[test]
fn type_errors_on_secrets_do_not_echo_them() {
    let cases = [
        (
            "auth: {client_keys: [sk-secret-1234]}",
            "auth.client_keys[0]: expected a mapping of keys, got a string",
        ),
        (
            "auth: {client_keys: [{name: a, key: 12345678}]}",
            "auth.client_keys[0].key: expected a string (quote the value), got a number",
        ),
        (
            "auth: {admin_keys: [12345678]}",
            "auth.admin_keys[0]: expected a string (quote the value), got a number",
        ),
        (
            "upstream: {api_keys: [12345678]}",
            "upstream.api_keys[0]: expected a string (quote the value), got a number",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(parse_err(yaml, &[]), expected, "for {yaml:?}");
    }
}

#[test]
fn empty_strings_switch_optional_settings_off() {
    let c = parse_ok(
        "state_dir: \"\"\nserver: {error_log: \"\", user: \"\"}\n\
             upstream: {api_keys_file: \"\", api_keys_url: \"${URL:-}\"}",
        &[],
    );
    assert_eq!(c, Config::default());
}

#[test]
fn key_lists_are_trimmed_split_and_deduplicated() {
    let c = parse_ok(
        "upstream: {api_keys: [\"\", \" k1 \", \"k2,k3\", \"k1\", \",\"]}\n\
             auth: {admin_keys: [\"\", a1, \" a2 \", a1]}",
        &[],
    );
    assert_eq!(c.upstream.api_keys, ["k1", "k2", "k3"]);
    assert_eq!(c.auth.admin_keys, ["a1", "a2"]);
    // A lone string counts as a one-item list.
    let c = parse_ok(
        "auth: {admin_keys: \"${ADMIN_KEY}\"}",
        &[("ADMIN_KEY", "adm")],
    );
    assert_eq!(c.auth.admin_keys, ["adm"]);
}

#[test]
fn openrouter_api_key_fills_upstream_keys_only_when_the_file_has_none() {
    const SHIPPED: &str = "upstream: {api_keys: [\"${OPENROUTER_API_KEY:-}\"]}";
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case] = &[
        ("", &[], &[]),
        ("", &[("OPENROUTER_API_KEY", " a , b,,a ")], &["a", "b"]),
        ("", &[("OPENROUTER_API_KEY", "")], &[]),
        (
            "upstream: {api_keys: [f1]}",
            &[("OPENROUTER_API_KEY", "e1")],
            &["f1"],
        ),
        (
            "upstream: {api_keys: [\"\"]}",
            &[("OPENROUTER_API_KEY", "e1")],
            &["e1"],
        ),
        (SHIPPED, &[], &[]),
        (SHIPPED, &[("OPENROUTER_API_KEY", "")], &[]),
        (SHIPPED, &[("OPENROUTER_API_KEY", "k1,k2")], &["k1", "k2"]),
    ];
    for (yaml, vars, expected) in cases {
        assert_eq!(
            parse_ok(yaml, vars).upstream.api_keys,
            *expected,
            "for {yaml:?} with {vars:?}"
        );
    }
}

#[test]
fn proxy_api_key_adds_the_default_client() {
    let c = parse_ok(
        "auth: {client_keys: [{name: a, key: ka}]}",
        &[("PROXY_API_KEY", " pk ")],
    );
    let names: Vec<_> = c
        .auth
        .client_keys
        .iter()
        .map(|k| (k.name.as_str(), k.key.as_str(), k.rpm))
        .collect();
    assert_eq!(names, [("a", "ka", None), ("default", "pk", None)]);

    assert!(parse_ok("", &[("PROXY_API_KEY", "")])
        .auth
        .client_keys
        .is_empty());

    let e = parse_err(
        "auth: {client_keys: [{name: default, key: ka}]}",
        &[("PROXY_API_KEY", "pk")],
    );
    assert_eq!(
        e,
        "PROXY_API_KEY: client key name \"default\" is already used by auth.client_keys[0]"
    );
    let e = parse_err(
        "auth: {client_keys: [{name: a, key: pk}]}",
        &[("PROXY_API_KEY", "pk")],
    );
    assert_eq!(
        e,
        "PROXY_API_KEY: the key is the same as auth.client_keys[0]'s; \
             client keys must be unique"
    );
}

#[test]
fn a_network_listener_needs_client_keys() {
    let with_key = "auth: {client_keys: [{name: a, key: k}]}";
    let cases = [
        ("127.0.0.1:8080", true),
        ("127.0.0.2:8080", true),
        ("localhost:8080", true),
        ("[::1]:8080", true),
        ("[::ffff:127.0.0.1]:8080", true),
        ("0.0.0.0:8080", false),
        ("10.1.2.3:80", false),
        ("[::]:8080", false),
    ];
    for (listen, loopback) in cases {
        let yaml = format!("listen: \"{listen}\"");
        match parse(&yaml, &[]) {
            Ok(_) => assert!(loopback, "{listen} must be refused without client keys"),
            Err(e) => {
                assert!(!loopback, "{listen}: {e}");
                let e = e.to_string();
                assert!(
                    e.starts_with(&format!("listen: {}", parse_listen_addr(listen).unwrap())),
                    "{e}"
                );
                assert!(
                    e.contains("auth.client_keys") && e.contains("PROXY_API_KEY"),
                    "{e}"
                );
            }
        }
        parse_ok(&format!("{yaml}\n{with_key}"), &[]);
        parse_ok(&yaml, &[("PROXY_API_KEY", "pk")]);
    }
}

#[test]
fn http_url_parts() {
    // input => (tls, host, port, path)
    let cases = [
        (
            "https://openrouter.ai/api/v1",
            (true, "openrouter.ai", 443, "/api/v1"),
        ),
        (
            "https://openrouter.ai/api/v1/",
            (true, "openrouter.ai", 443, "/api/v1"),
        ),
        ("http://example.com", (false, "example.com", 80, "")),
        ("http://example.com/", (false, "example.com", 80, "")),
        ("http://example.com//", (false, "example.com", 80, "")),
        (
            "http://localhost:8081/v1",
            (false, "localhost", 8081, "/v1"),
        ),
        (
            "https://example.com:443/x",
            (true, "example.com", 443, "/x"),
        ),
        ("http://[::1]:8080/v1", (false, "::1", 8080, "/v1")),
        ("https://[2001:DB8::1]/", (true, "2001:db8::1", 443, "")),
        ("http://[0:0::1]:81", (false, "::1", 81, "")),
        (
            "HTTPS://Example.COM/Path",
            (true, "example.com", 443, "/Path"),
        ),
        (
            "https://a.io/top?limit=10&x=y",
            (true, "a.io", 443, "/top?limit=10&x=y"),
        ),
        (
            "https://a.io/top/?limit=10",
            (true, "a.io", 443, "/top?limit=10"),
        ),
        ("https://a.io?limit=10", (true, "a.io", 443, "/?limit=10")),
        ("https://a.io/top?", (true, "a.io", 443, "/top")),
    ];
    for (input, (tls, host, port, path)) in cases {
        let url = HttpUrl::parse(input).unwrap_or_else(|e| panic!("{e}"));
        let parts = (url.tls, url.host.as_str(), url.port, url.path.as_str());
        assert_eq!(parts, (tls, host, port, path), "for {input}");
    }
}

#[test]
fn http_url_host_header_and_display() {
    // input => (host_header, display)
    let cases = [
        (
            "https://openrouter.ai/api/v1/",
            ("openrouter.ai", "https://openrouter.ai/api/v1"),
        ),
        ("http://example.com/", ("example.com", "http://example.com")),
        (
            "http://localhost:8081/v1",
            ("localhost:8081", "http://localhost:8081/v1"),
        ),
        (
            "https://example.com:443/x",
            ("example.com", "https://example.com/x"),
        ),
        (
            "http://example.com:80",
            ("example.com", "http://example.com"),
        ),
        (
            "http://example.com:443",
            ("example.com:443", "http://example.com:443"),
        ),
        (
            "https://example.com:80",
            ("example.com:80", "https://example.com:80"),
        ),
        (
            "http://[::1]:8080/v1",
            ("[::1]:8080", "http://[::1]:8080/v1"),
        ),
        (
            "https://[2001:DB8::1]/",
            ("[2001:db8::1]", "https://[2001:db8::1]"),
        ),
        (
            "HTTPS://Example.COM/Path",
            ("example.com", "https://example.com/Path"),
        ),
        (
            "https://a.io/top?limit=10",
            ("a.io", "https://a.io/top?limit=10"),
        ),
        ("https://a.io?limit=10", ("a.io", "https://a.io/?limit=10")),
    ];
    for (input, (host_header, display)) in cases {
        let url = HttpUrl::parse(input).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(url.host_header(), host_header, "for {input}");
        assert_eq!(url.to_string(), display, "for {input}");
        let reparsed = HttpUrl::parse(display);
        assert_eq!(reparsed.as_ref(), Ok(&url), "round trip of {input}");
    }
}

#[test]
fn http_url_helpers() {
    let url = HttpUrl::parse("https://[::1]/").unwrap();
    assert_eq!(
        (url.scheme(), url.authority(), url.request_target()),
        ("https", "[::1]:443".to_owned(), "/")
    );
    let url = HttpUrl::parse("http://h:81/a?b").unwrap();
    assert_eq!(
        (url.scheme(), url.authority(), url.request_target()),
        ("http", "h:81".to_owned(), "/a?b")
    );
}

#[test]
fn http_url_rejects() {
    let cases = [
        ("ftp://example.com", "unsupported scheme \"ftp\""),
        (
            "example.com/api",
            "it does not start with http:// or https://",
        ),
        ("https://", "it has no host"),
        ("https:///path", "it has no host"),
        ("https://:443", "it has no host"),
        ("http://host:0", "\"0\" is not a valid port"),
        ("http://host:99999", "\"99999\" is not a valid port"),
        ("http://host:", "\"\" is not a valid port"),
        ("http://host:abc/x", "\"abc\" is not a valid port"),
        (
            "http://user:pw@host/",
            "user:password@ in URLs is not supported",
        ),
        ("http://[::1/", "no closing ']'"),
        ("http://[nope]/", "\"nope\" is not an IPv6 address"),
        ("http://[]/", "\"\" is not an IPv6 address"),
        ("http://[::1]x/", "unexpected text after ']'"),
        ("http://::1/", "IPv6 addresses must be written in brackets"),
        ("http://ho st/", "whitespace"),
        ("http://host/a b", "whitespace"),
        ("http://host/#frag", "fragments"),
        ("http://h%41st/", "\"h%41st\" is not a valid host name"),
    ];
    for (input, expected) in cases {
        match HttpUrl::parse(input) {
            Ok(url) => panic!("{input} should be rejected, got {url:?}"),
            Err(e) => assert!(
                e.to_string()
                    .starts_with(&format!("{input:?} is not an http(s) URL: "))
                    && e.to_string().contains(expected),
                "{e:?} should contain {expected:?}"
            ),
        }
    }
}

#[test]
fn mask_key_shows_the_last_four_chars() {
    let cases = [
        ("", "..."),
        ("abcd", "..."),
        ("abcde", "...bcde"),
        ("sk-or-v1-0123456789", "...6789"),
        ("ключ-секрет", "...крет"),
    ];
    for (key, masked) in cases {
        assert_eq!(mask_key(key), masked, "for {key:?}");
    }
}

#[test]
fn debug_never_shows_a_whole_secret() {
    let c = parse_ok(SPEC_EXAMPLE, SPEC_ENV);
    for debug in [format!("{c:?}"), format!("{c:#?}")] {
        for secret in [
            "sk-or-v1-first",
            "sk-or-v1-second",
            "alice-secret-key",
            "admin-secret-key",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
        assert!(
            debug.contains("...irst") && debug.contains("...-key"),
            "{debug}"
        );
        assert!(
            debug.contains("alice"),
            "client names are not secret: {debug}"
        );
    }
}

#[test]
fn config_error_is_a_std_error() {
    let e: Box<dyn std::error::Error> =
        Box::new(ConfigError::at("a.b", "bad").in_file(Path::new("c.yaml")));
    assert_eq!(e.to_string(), "c.yaml: a.b: bad");
    let e = ConfigError::at("", "whole file");
    assert_eq!((e.message(), e.file()), ("whole file", None));
}

#[test]
fn edit_distance_and_suggestions() {
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("max_atempts", "max_attempts"), 1);
    assert_eq!(
        closest_key("treads", &["threads", "daemon"]),
        Some("threads")
    );
    assert_eq!(closest_key("zzz", &["threads", "daemon"]), None);
}
