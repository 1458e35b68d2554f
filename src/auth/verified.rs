//! Tokens verified already: a signature check per request is most of what a cheap query
//! costs, and clients send the same token until it expires. A token enters only after a
//! full verification; a hit is taken only while the token has not expired and the key
//! that verified it is still the one the key set holds for its `kid` (a refreshed or
//! rotated key set makes every earlier entry miss). Entries are keyed by the token's
//! SHA-256, so the cache holds no token; its size is bounded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use sha2::{Digest, Sha256};

use super::{Identity, jwks::VerifyingKey};

/// The most tokens held.
pub(super) const CAPACITY: usize = 16_384;

/// What a verification established about a token.
#[derive(Clone)]
pub(super) struct Verified {
    /// The caller it names, without the token itself.
    pub(super) identity: Identity,
    /// Its `exp` claim (seconds since the epoch).
    pub(super) exp: u64,
    /// The key that verified it; `None` for the static HS256 secret.
    pub(super) key: Option<Arc<VerifyingKey>>,
}

/// Tokens verified already, by SHA-256.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
}

/// The cache key of `token`.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// The caller `token` names, when it was verified by `key` (the key the set holds
    /// now for its `kid`; `None` for HS256) and is still valid at `now` with `leeway`.
    pub(super) fn get(
        &self,
        digest: &[u8; 32],
        key: Option<&Arc<VerifyingKey>>,
        now: u64,
        leeway: u64,
    ) -> Option<Identity> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = entries.get(digest)?;
        let same_key = match (&hit.key, key) {
            (None, None) => true,
            (Some(held), Some(now_held)) => Arc::ptr_eq(held, now_held),
            _ => false,
        };
        (same_key && hit.exp.saturating_add(leeway) >= now).then(|| hit.identity.clone())
    }

    /// Remembers a verified token. When full, expired entries go first, and everything
    /// when none has expired (the next requests verify again).
    pub(super) fn insert(&self, digest: [u8; 32], verified: Verified, now: u64, leeway: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(&digest) {
            entries.retain(|_, v| v.exp.saturating_add(leeway) >= now);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, verified);
    }

    /// Tokens held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(user: &str) -> Identity {
        Identity {
            user_id: user.into(),
            email: None,
            sub: Some(format!("sub-{user}")),
            roles: Vec::new(),
            token: None,
        }
    }

    fn verified(user: &str, exp: u64) -> Verified {
        Verified {
            identity: identity(user),
            exp,
            key: None,
        }
    }

    #[test]
    fn an_expired_token_misses() {
        let cache = VerifiedTokens::default();
        let d = digest("t");
        cache.insert(d, verified("alice", 100), 50, 0);
        assert!(cache.get(&d, None, 100, 0).is_some());
        assert!(cache.get(&d, None, 101, 0).is_none());
        assert!(cache.get(&d, None, 105, 5).is_some(), "within the leeway");
    }

    #[test]
    fn a_token_verified_by_another_key_misses() {
        let cache = VerifiedTokens::default();
        let key = |secret: &[u8]| {
            Arc::new(VerifyingKey {
                key: jsonwebtoken::DecodingKey::from_secret(secret),
                alg: jsonwebtoken::Algorithm::HS256,
            })
        };
        let (old, new) = (key(b"a"), key(b"a"));
        let d = digest("t");
        cache.insert(
            d,
            Verified {
                key: Some(old.clone()),
                ..verified("alice", 100)
            },
            0,
            0,
        );
        assert!(cache.get(&d, Some(&old), 0, 0).is_some());
        assert!(cache.get(&d, Some(&new), 0, 0).is_none(), "a refreshed set");
        assert!(cache.get(&d, None, 0, 0).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(digest(&i.to_string()), verified("u", 100), 0, 0);
        }
        assert!(cache.len() <= CAPACITY);
        // Expired entries make room first.
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            let exp = if i == 0 { 10 } else { 100 };
            cache.insert(digest(&i.to_string()), verified("u", exp), 0, 0);
        }
        cache.insert(digest("new"), verified("v", 100), 50, 0);
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get(&digest("1"), None, 50, 0).is_some());
        assert!(cache.get(&digest("new"), None, 50, 0).is_some());
    }
}
