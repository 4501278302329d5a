//! `${VAR}` and `${VAR:-default}` in string values (SPEC §2, §11).

use serde_yaml::Value;

use super::error::Result;
use super::reader::{join, key_text};
use super::*;

// Interpolation
// ---------------------------------------------------------------------------

/// Replaces variable references in every string value of the tree (not in
/// keys: a key is part of the schema, not data).
pub(super) fn interpolate_tree(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = interpolate(s, env).map_err(|why| ConfigError::at(path, why))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(entries) => {
            for (key, item) in entries.iter_mut() {
                interpolate_tree(item, &join(path, &key_text(key)), env)?;
            }
        }
        Value::Tagged(tagged) => interpolate_tree(&mut tagged.value, path, env)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${VAR}` and `${VAR:-default}` in one string.
///
/// `$$` and a `$` not followed by `{` are kept as written; the second `$` of
/// `$$` does not start a reference, so `$${X}` stays literal. Substituted
/// values are not scanned again, so a secret containing `${` is safe.
/// Errors never quote the whole string: it may hold a secret.
pub(super) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('{') {
            let end = reference
                .find('}')
                .ok_or(InterpolationError::Unterminated)?;
            out.push_str(&resolve(&reference[..end], env)?);
            rest = &reference[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}` reference body (`VAR` or `VAR:-default`).
pub(super) fn resolve(
    reference: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let (name, default) = match reference.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (reference, None),
    };
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(InterpolationError::InvalidName(name.to_owned()));
    }
    match (env(name), default) {
        // Shell semantics: `:-` also replaces a set-but-empty variable.
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_owned()),
        (None, None) => Err(InterpolationError::Unset(name.to_owned())),
    }
}

/// Why a `${...}` reference cannot be expanded. Never quotes the surrounding text: it
/// may hold a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum InterpolationError {
    Unterminated,
    InvalidName(String),
    Unset(String),
}

impl std::fmt::Display for InterpolationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InterpolationError::Unterminated => {
                f.write_str("unterminated \"${\": a variable reference needs a closing \"}\"")
            }
            InterpolationError::InvalidName(name) => write!(
                f,
                "invalid variable name {name:?}: expected ${{NAME}} or ${{NAME:-default}} \
                 with NAME made of letters, digits and _"
            ),
            InterpolationError::Unset(name) => write!(
                f,
                "environment variable {name} is not set \
                 (write ${{{name}:-}} to make it optional)"
            ),
        }
    }
}
