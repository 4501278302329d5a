//! The YAML walker: reads a mapping key by key with its dotted path, so every error names
//! the key and the offending value, and keys left unread are reported as unknown.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::error::Result;
use super::*;

// Reading the YAML tree
// ---------------------------------------------------------------------------

/// One YAML mapping, read key by key. Each key a reader asks for is removed,
/// so whatever is left at [`Table::finish`] is a key nobody knows.
pub(super) struct Table {
    path: String,
    entries: Mapping,
    known: Vec<&'static str>,
}

impl Table {
    pub(super) fn new(path: String, value: Value) -> Result<Table> {
        let entries = match value {
            // A section written as `routing:` with nothing under it.
            Value::Null => Mapping::new(),
            Value::Mapping(entries) => entries,
            other => {
                return Err(ConfigError::at(
                    &path,
                    format!("expected a mapping of keys, got {}", kind(&other)),
                ))
            }
        };
        Ok(Table {
            path,
            entries,
            known: Vec::new(),
        })
    }

    /// Removes `key`; `None` when absent or null (`key:` with no value means
    /// "use the default").
    pub(super) fn take(&mut self, key: &'static str) -> Option<Field> {
        self.known.push(key);
        match self.entries.shift_remove(key)? {
            Value::Null => None,
            value => Some(Field {
                path: join(&self.path, key),
                value,
            }),
        }
    }

    /// The value of `key` converted by `convert`, or `default` when absent.
    pub(super) fn get<T>(
        &mut self,
        key: &'static str,
        default: T,
        convert: impl FnOnce(&Field) -> Result<T>,
    ) -> Result<T> {
        self.take(key).map_or(Ok(default), |field| convert(&field))
    }

    pub(super) fn require<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&Field) -> Result<T>,
    ) -> Result<T> {
        match self.take(key) {
            Some(field) => convert(&field),
            None => Err(ConfigError::at(&join(&self.path, key), "is required")),
        }
    }

    /// The nested mapping under `key` (empty when absent).
    pub(super) fn section(&mut self, key: &'static str) -> Result<Table> {
        let path = join(&self.path, key);
        Table::new(
            path,
            self.take(key).map_or(Value::Null, |field| field.value),
        )
    }

    /// Fails on any key that no reader asked for.
    pub(super) fn finish(self) -> Result<()> {
        let unknown: Vec<String> = self
            .entries
            .keys()
            .map(|key| {
                let key = key_text(key);
                let path = join(&self.path, &key);
                match closest_key(&key, &self.known) {
                    Some(known) => {
                        format!("'{path}' (did you mean '{}'?)", join(&self.path, known))
                    }
                    None => format!("'{path}'"),
                }
            })
            .collect();
        match unknown.as_slice() {
            [] => Ok(()),
            [one] => Err(ConfigError::new(format!("unknown config key {one}"))),
            many => Err(ConfigError::new(format!(
                "unknown config keys {}",
                many.join(", ")
            ))),
        }
    }
}

/// A value found at a dotted key path.
pub(super) struct Field {
    pub(super) path: String,
    value: Value,
}

impl Field {
    pub(super) fn error(&self, message: impl fmt::Display) -> ConfigError {
        ConfigError::at(&self.path, message)
    }

    pub(super) fn expected(&self, what: &str) -> ConfigError {
        self.error(format!("expected {what}, got {}", describe(&self.value)))
    }

    pub(super) fn str(&self) -> Result<&str> {
        match &self.value {
            Value::String(s) => Ok(s),
            // A number or bool is not silently turned into text: `0123`
            // would come back as "123".
            _ => Err(self.expected("a string (quote the value)")),
        }
    }

    /// A required name or path; surrounding whitespace is never meant.
    pub(super) fn non_empty_string(&self) -> Result<String> {
        match self.str()?.trim() {
            "" => Err(self.error("must not be empty")),
            s => Ok(s.to_owned()),
        }
    }

    /// An optional setting: `""` means unset, so `${VAR:-}` can switch it off.
    pub(super) fn optional_string(&self) -> Result<Option<String>> {
        Ok(Some(self.str()?)
            .filter(|s| !s.is_empty())
            .map(str::to_owned))
    }

    pub(super) fn optional_path(&self) -> Result<Option<PathBuf>> {
        Ok(self.optional_string()?.map(PathBuf::from))
    }

    /// A key or token: trimmed, and never echoed in an error.
    pub(super) fn secret(&self) -> Result<String> {
        match &self.value {
            Value::String(s) if s.trim().is_empty() => Err(self.error("must not be empty")),
            Value::String(s) => Ok(s.trim().to_owned()),
            other => Err(self.error(format!(
                "expected a string (quote the value), got {}",
                kind(other)
            ))),
        }
    }

    /// A list of secrets, untrimmed and unfiltered.
    pub(super) fn secret_list(&self) -> Result<Vec<String>> {
        self.items()?
            .into_iter()
            .map(|item| match &item.value {
                Value::String(s) => Ok(s.clone()),
                other => Err(item.error(format!(
                    "expected a string (quote the value), got {}",
                    kind(other)
                ))),
            })
            .collect()
    }

    pub(super) fn bool(&self) -> Result<bool> {
        match &self.value {
            Value::Bool(b) => Ok(*b),
            // Interpolated values are always strings.
            Value::String(s) if s.trim() == "true" => Ok(true),
            Value::String(s) if s.trim() == "false" => Ok(false),
            _ => Err(self.expected("true or false")),
        }
    }

    /// A non-negative integer of at least `min`. Strings holding an integer
    /// are accepted because `${VAR}` always produces a string.
    pub(super) fn int<T: TryFrom<u64>>(&self, min: u64) -> Result<T> {
        let n = match &self.value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= min => {
                T::try_from(n).map_err(|_| self.error(format!("{n} is too large")))
            }
            _ => Err(self.expected(&format!("an integer >= {min}"))),
        }
    }

    /// A duration in whole seconds, from 1 to [`MAX_SECS`].
    pub(super) fn secs(&self) -> Result<Duration> {
        match self.int(1) {
            Ok(secs) if secs <= MAX_SECS => Ok(Duration::from_secs(secs)),
            _ => Err(self.expected(&format!("a whole number of seconds from 1 to {MAX_SECS}"))),
        }
    }

    pub(super) fn url(&self) -> Result<HttpUrl> {
        HttpUrl::parse(self.str()?).map_err(|why| self.error(why))
    }

    pub(super) fn optional_url(&self) -> Result<Option<HttpUrl>> {
        match self.str()? {
            "" => Ok(None),
            _ => self.url().map(Some),
        }
    }

    /// The API root that request paths are appended to, so no query.
    pub(super) fn base_url(&self) -> Result<HttpUrl> {
        let url = self.url()?;
        if url.path.contains('?') {
            return Err(self.error(format!("{url} must not have a ?query")));
        }
        Ok(url)
    }

    pub(super) fn socket_addr(&self) -> Result<SocketAddr> {
        let text = self.str()?;
        let addr = parse_listen_addr(text).ok_or_else(|| {
            self.error(format!(
                "{text:?} is not a host:port address \
                 (expected e.g. \"127.0.0.1:8080\", \"[::1]:8080\" or \"localhost:8080\")"
            ))
        })?;
        if addr.port() == 0 {
            return Err(self.error(format!("{text:?} has port 0; a fixed port is required")));
        }
        Ok(addr)
    }

    /// The items of a list, each with its indexed path. A single value
    /// counts as a one-item list, so `admin_keys: "${ADMIN_KEY}"` works.
    pub(super) fn items(&self) -> Result<Vec<Field>> {
        match &self.value {
            Value::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    path: format!("{}[{i}]", self.path),
                    value: value.clone(),
                })
                .collect()),
            Value::Mapping(_) => Err(self.expected("a list")),
            value => Ok(vec![Field {
                path: self.path.clone(),
                value: value.clone(),
            }]),
        }
    }

    pub(super) fn table(&self) -> Result<Table> {
        Table::new(self.path.clone(), self.value.clone())
    }
}

/// Accepts `ip:port`, `[ipv6]:port` and `localhost:port`. Other host names
/// are refused rather than resolved: what a name resolves to can change
/// after the config was checked, and the loopback rule depends on it.
pub(super) fn parse_listen_addr(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (host, port) = text.rsplit_once(':')?;
    if !host.eq_ignore_ascii_case("localhost") {
        return None;
    }
    Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port.parse().ok()?)))
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(super) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => describe(other),
    }
}

/// A value as shown in an error: scalars as written, collections by kind.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        other => kind(other).to_owned(),
    }
}

/// The kind of a value, for errors that must not echo it.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The known key an unknown one was most likely meant to be: a small typo
/// (up to a third of the name), or a duration written without `_secs`.
pub(super) fn closest_key<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(secs) = known
        .iter()
        .find(|k| k.strip_suffix("_secs") == Some(unknown))
    {
        return Some(secs);
    }
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(distance, k)| distance * 3 <= k.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance, one row at a time.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------
