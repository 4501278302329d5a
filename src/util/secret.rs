//! Secrets as they may be shown: never whole (SPEC §8, §11).

use sha2::{Digest, Sha256};

/// Shows a secret by its last four characters only (`...abcd`), enough to
/// tell keys apart in logs; keys of four characters or fewer show as `...`.
pub fn mask_key(key: &str) -> String {
    let chars = key.chars().count();
    if chars <= 4 {
        return "...".to_owned();
    }
    let tail: String = key.chars().skip(chars - 4).collect();
    format!("...{tail}")
}

/// A stable identifier for a key that reveals nothing usable: the first 16 hex digits of
/// its SHA-256. Persisted state is matched to configured keys by it (SPEC §11).
pub fn key_id(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_only_the_tail() {
        assert_eq!(mask_key("sk-or-v1-abcdef"), "...cdef");
        assert_eq!(mask_key("abcd"), "...");
        assert_eq!(mask_key(""), "...");
        assert_eq!(key_id("abc"), "ba7816bf8f01cfea");
    }
}
