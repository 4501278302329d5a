//! Where upstream keys come from (SPEC §11): `upstream.api_keys`, a keys file (one per
//! line) and a CSV export at a URL. Pure parsers, plus the file read at start.

use std::path::Path;

/// Keys from a keys file: one per line, `#` starts a comment, blanks ignored.
pub fn parse_keys_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|key| !key.is_empty())
        .map(str::to_string)
        .collect()
}

/// Keys from a CSV export: the first column of each row; a header row (`key`, `api_key`,
/// ...) and blank or `#` rows are skipped; quoted cells are unquoted.
pub fn parse_keys_csv(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (row, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}');
        let first = if let Some(quoted) = line.strip_prefix('"') {
            quoted.split('"').next().unwrap_or_default()
        } else {
            line.split([',', ';', '\t']).next().unwrap_or_default()
        };
        let first = first.trim();
        let looks_like_header = row == 0
            && !first.is_empty()
            && first
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_' || c == ' ');
        if first.is_empty() || first.starts_with('#') || looks_like_header {
            continue;
        }
        keys.push(first.to_string());
    }
    keys
}

/// Configured keys first, then the file's, then the URL's; duplicates merged.
pub fn merge_sources(sources: [&[String]; 3]) -> Vec<String> {
    let mut merged: Vec<String> = Vec::new();
    for key in sources.into_iter().flatten() {
        if !merged.contains(key) {
            merged.push(key.clone());
        }
    }
    merged
}

/// Read the keys file at start (so the pool begins with its keys).
pub fn read_keys_file(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_keys_file(&text),
        Err(e) => {
            log::warn!("cannot read upstream.api_keys_file {}: {e}", path.display());
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_and_csv_parsing() {
        assert_eq!(
            parse_keys_file("# team keys\nsk-a\n\n  sk-b  # bob\n#sk-c\n"),
            ["sk-a", "sk-b"]
        );
        assert_eq!(
            parse_keys_csv("key,owner\nsk-a,alice\n\"sk-b\",bob\n,empty\n#x,y\nsk-c\n"),
            ["sk-a", "sk-b", "sk-c"]
        );
        assert_eq!(parse_keys_csv("sk-or-v1-abc,alice\n"), ["sk-or-v1-abc"]);
        assert_eq!(
            merge_sources([&["a".into()], &["b".into(), "a".into()], &["c".into()]]),
            ["a", "b", "c"]
        );
    }
}
