//! One reader per top-level section of the file; each key, its default and its rule on one line.

use std::collections::{HashMap, HashSet};

use super::error::Result;
use super::reader::*;
use super::*;

pub(super) fn read_server(mut t: Table) -> Result<ServerSettings> {
    let d = ServerSettings::default();
    let server = ServerSettings {
        threads: t.get("threads", d.threads, |f| f.int(1))?,
        pid_file: t.get("pid_file", d.pid_file, Field::non_empty_string)?,
        upgrade_sock: t.get("upgrade_sock", d.upgrade_sock, Field::non_empty_string)?,
        error_log: t.get("error_log", d.error_log, Field::optional_string)?,
        user: t.get("user", d.user, Field::optional_string)?,
        group: t.get("group", d.group, Field::optional_string)?,
        daemon: t.get("daemon", d.daemon, Field::bool)?,
        grace_period_seconds: t
            .get("grace_period_seconds", d.grace_period_seconds, |f| f.int(0))?,
        graceful_shutdown_timeout_seconds: t.get(
            "graceful_shutdown_timeout_seconds",
            d.graceful_shutdown_timeout_seconds,
            |f| f.int(0),
        )?,
        upstream_keepalive_pool_size: t.get(
            "upstream_keepalive_pool_size",
            d.upstream_keepalive_pool_size,
            |f| f.int(0),
        )?,
        work_stealing: t.get("work_stealing", d.work_stealing, Field::bool)?,
    };
    t.finish()?;
    Ok(server)
}

pub(super) fn read_upstream(
    mut t: Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<UpstreamSettings> {
    let d = UpstreamSettings::default();
    let mut upstream = UpstreamSettings {
        base_url: t.get("base_url", d.base_url, Field::base_url)?,
        // Entries are split on commas so that `["${OPENROUTER_API_KEY}"]`
        // accepts the same comma-separated list as the env shortcut.
        api_keys: t.get("api_keys", d.api_keys, |f| {
            Ok(distinct_keys(
                f.secret_list()?.iter().flat_map(|k| k.split(',')),
                &f.path,
            ))
        })?,
        api_keys_file: t.get("api_keys_file", d.api_keys_file, Field::optional_path)?,
        api_keys_url: t.get("api_keys_url", d.api_keys_url, Field::optional_url)?,
        connect_timeout: t.get("connect_timeout_secs", d.connect_timeout, Field::secs)?,
        timeout: t.get("timeout_secs", d.timeout, Field::secs)?,
        idle_timeout: t.get("idle_timeout_secs", d.idle_timeout, Field::secs)?,
        limits: d.limits,
    };
    t.finish()?;

    // The env shortcut only fills in: keys written in the file win.
    if upstream.api_keys.is_empty() {
        if let Some(list) = env("OPENROUTER_API_KEY") {
            upstream.api_keys = distinct_keys(list.split(','), "OPENROUTER_API_KEY");
        }
    }
    Ok(upstream)
}

pub(super) fn read_models(mut t: Table) -> Result<ModelsSettings> {
    let d = ModelsSettings::default();
    let models = ModelsSettings {
        source_url: t.get("source_url", d.source_url, Field::url)?,
        refresh: t.get("refresh_secs", d.refresh, Field::secs)?,
    };
    t.finish()?;
    Ok(models)
}

pub(super) fn read_routing(mut t: Table) -> Result<RoutingSettings> {
    let d = RoutingSettings::default();
    let routing = RoutingSettings {
        max_attempts: t.get("max_attempts", d.max_attempts, |f| f.int(1))?,
        request_deadline: t.get("request_deadline_secs", d.request_deadline, Field::secs)?,
        rate_limit_cooldown: t.get(
            "rate_limit_cooldown_secs",
            d.rate_limit_cooldown,
            Field::secs,
        )?,
        error_cooldown: t.get("error_cooldown_secs", d.error_cooldown, Field::secs)?,
        use_list_fallback: t.get("use_list_fallback", d.use_list_fallback, Field::bool)?,
        provider_order: d.provider_order,
        health_window: d.health_window,
        slow_ttfb: d.slow_ttfb,
        demotion: d.demotion,
    };
    t.finish()?;
    Ok(routing)
}

pub(super) fn read_auth(
    mut t: Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthSettings> {
    // Each key is kept with where it came from, for the uniqueness errors.
    let mut client_keys: Vec<(String, ClientKey)> = t.get("client_keys", Vec::new(), |f| {
        f.items()?
            .into_iter()
            .map(|item| Ok((item.path.clone(), read_client_key(item.table()?)?)))
            .collect()
    })?;
    let admin_keys = t.get("admin_keys", Vec::new(), |f| {
        Ok(distinct_keys(
            f.secret_list()?.iter().map(String::as_str),
            &f.path,
        ))
    })?;
    t.finish()?;

    if let Some(key) = env("PROXY_API_KEY") {
        let key = key.trim();
        if !key.is_empty() {
            let entry = ClientKey {
                name: ENV_CLIENT_KEY_NAME.to_owned(),
                key: key.to_owned(),
                rpm: None,
            };
            client_keys.push(("PROXY_API_KEY".to_owned(), entry));
        }
    }

    // Names identify clients in logs and metrics, keys identify them on the
    // wire: a repeat of either would make two clients indistinguishable.
    let mut names = HashMap::new();
    let mut keys = HashMap::new();
    for (origin, entry) in &client_keys {
        if let Some(first) = names.insert(entry.name.as_str(), origin.as_str()) {
            return Err(ConfigError::at(
                origin,
                format!(
                    "client key name {:?} is already used by {first}",
                    entry.name
                ),
            ));
        }
        if let Some(first) = keys.insert(entry.key.as_str(), origin.as_str()) {
            return Err(ConfigError::at(
                origin,
                format!("the key is the same as {first}'s; client keys must be unique"),
            ));
        }
    }

    Ok(AuthSettings {
        client_keys: client_keys.into_iter().map(|(_, entry)| entry).collect(),
        admin_keys,
    })
}

pub(super) fn read_client_key(mut t: Table) -> Result<ClientKey> {
    let entry = ClientKey {
        name: t.require("name", Field::non_empty_string)?,
        key: t.require("key", Field::secret)?,
        rpm: t.get("rpm", None, |f| f.int(1).map(Some))?,
    };
    t.finish()?;
    Ok(entry)
}

pub(super) fn read_limits(mut t: Table) -> Result<LimitsSettings> {
    let d = LimitsSettings::default();
    let limits = LimitsSettings {
        max_body_bytes: t.get("max_body_bytes", d.max_body_bytes, |f| {
            f.int(MIN_BODY_BYTES)
        })?,
    };
    t.finish()?;
    Ok(limits)
}

/// Trims keys, drops empty ones and repeats (keeping the first): an unset
/// `${VAR:-}` or a stray comma must not become a key, and a key listed twice
/// would just be tried, and cooled down, twice.
pub(super) fn distinct_keys<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    origin: &str,
) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut distinct = Vec::new();
    for key in keys.into_iter().map(str::trim).filter(|k| !k.is_empty()) {
        if seen.insert(key) {
            distinct.push(key.to_owned());
        } else {
            log::warn!(
                "{origin}: key {} is listed more than once; using it once",
                mask_key(key)
            );
        }
    }
    distinct
}

// ---------------------------------------------------------------------------
