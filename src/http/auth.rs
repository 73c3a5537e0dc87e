//! Bearer tokens: read from the reference environment variables, kept only
//! as SHA-256 digests, compared in constant time (`subtle`).
//!
//! Sources, first match wins (reference `docs/user/operations/server.md`,
//! "Auth model"): `OMNIGRAPH_SERVER_BEARER_TOKENS_FILE` or
//! `OMNIGRAPH_SERVER_BEARER_TOKENS_JSON` (`{"actor": "token", ...}`), then
//! `OMNIGRAPH_SERVER_BEARER_TOKEN` (one token, actor `default`).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Configured tokens as `(sha256(token), actor)`.
#[derive(Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], String)>,
    /// Which variable they came from, for the startup log.
    pub source: Option<&'static str>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("actors", &self.entries.len())
            .field("source", &self.source)
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Builds from `(actor, token)` pairs. Errors: an empty token or actor,
    /// the same token given to two actors.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        source: &'static str,
    ) -> Result<Tokens, String> {
        let mut entries: Vec<([u8; 32], String)> = Vec::new();
        for (actor, token) in pairs {
            if actor.trim().is_empty() || token.trim().is_empty() {
                return Err(format!("{source}: actor ids and tokens must not be empty"));
            }
            let d = digest(token);
            if let Some((_, other)) = entries.iter().find(|(e, _)| bool::from(e.ct_eq(&d))) {
                return Err(format!(
                    "{source}: actors `{other}` and `{actor}` have the same token; give each its own"
                ));
            }
            entries.push((d, actor.to_string()));
        }
        Ok(Tokens {
            entries,
            source: Some(source),
        })
    }

    /// Reads the environment. `Ok` with no entries when nothing is set.
    pub fn from_env() -> Result<Tokens, String> {
        let json_map = |text: &str, source: &'static str| -> Result<Tokens, String> {
            let map: std::collections::BTreeMap<String, String> = serde_json::from_str(text)
                .map_err(|e| {
                    format!("{source} must be a JSON object {{\"actor\": \"token\", ...}}: {e}")
                })?;
            Tokens::from_pairs(map.iter().map(|(a, t)| (a.as_str(), t.as_str())), source)
        };
        if let Ok(path) = std::env::var("OMNIGRAPH_SERVER_BEARER_TOKENS_FILE")
            && !path.is_empty()
        {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("OMNIGRAPH_SERVER_BEARER_TOKENS_FILE: cannot read {path}: {e}")
            })?;
            return json_map(&text, "OMNIGRAPH_SERVER_BEARER_TOKENS_FILE");
        }
        if let Ok(text) = std::env::var("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON")
            && !text.is_empty()
        {
            return json_map(&text, "OMNIGRAPH_SERVER_BEARER_TOKENS_JSON");
        }
        if let Ok(token) = std::env::var("OMNIGRAPH_SERVER_BEARER_TOKEN")
            && !token.is_empty()
        {
            return Tokens::from_pairs(
                [("default", token.as_str())],
                "OMNIGRAPH_SERVER_BEARER_TOKEN",
            );
        }
        Ok(Tokens::default())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The actor a presented token belongs to. Every entry is compared,
    /// whatever matches, so timing does not reveal which one did.
    pub fn actor(&self, presented: &str) -> Option<&str> {
        let d = digest(presented);
        let mut found: Option<&str> = None;
        for (e, actor) in &self.entries {
            if bool::from(e.ct_eq(&d)) {
                found = Some(actor);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_resolve_to_their_actor_only() {
        let t = Tokens::from_pairs([("a", "tok-a"), ("b", "tok-b")], "test").expect("valid tokens");
        assert_eq!(t.actor("tok-a"), Some("a"));
        assert_eq!(t.actor("tok-b"), Some("b"));
        assert_eq!(t.actor("tok-c"), None);
        assert_eq!(t.actor(""), None);
        assert!(Tokens::from_pairs([("a", "x"), ("b", "x")], "test").is_err());
        assert!(Tokens::from_pairs([("a", "")], "test").is_err());
        // Only digests are kept.
        assert!(!format!("{t:?}").contains("tok-a"));
    }
}
